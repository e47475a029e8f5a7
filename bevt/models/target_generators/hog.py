# Copyright (c) bevt contributors. All rights reserved.
"""MaskFeat's HOG features as BEVT regression targets."""
from typing import Optional

from mmpretrain.models.selfsup.maskfeat import HOGGenerator
from torch import Tensor

from bevt.registry import MODELS
from bevt.utils.typing_utils import OptMultiConfig
from .base import BEVTTokenizer, check_int


class _CellHOGGenerator(HOGGenerator):
    """mmpretrain's ``HOGGenerator`` with a configurable target grid.

    ``HOGGenerator._reshape`` hard-codes a 14x14 grid of flattened
    (B, 196, D) features; this subclass groups ``cells`` x ``cells`` HOG
    cells per target and keeps the grid 2-D. For a 224-px input with
    ``pool=8`` and ``cells=2`` it gives exactly mmpretrain's features,
    reshaped to (B, 14, 14, 108).

    Args:
        cells (int): HOG cells per target along each side.
        **kwargs: ``nbins``, ``pool`` and ``gaussian_window`` of
            ``HOGGenerator``.
    """

    def __init__(self, cells: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cells = cells

    def _reshape(self, hog_feat: Tensor) -> Tensor:
        """Group the per-cell histograms into targets.

        Args:
            hog_feat (Tensor): Normalised histograms of shape
                (B, 3, nbins, h/pool, w/pool).

        Returns:
            Tensor: Features of shape (B, h/d, w/d, 3*nbins*cells*cells),
            with d = ``pool * cells``.
        """
        hog_feat = hog_feat.flatten(1, 2)  # (B, 3*nbins, h/pool, w/pool)
        hog_feat = hog_feat.permute(0, 2, 3, 1)  # (B, h/pool, w/pool, C)
        hog_feat = hog_feat.unfold(1, self.cells, self.cells).unfold(
            2, self.cells, self.cells)  # (B, h/d, w/d, C, cells, cells)
        return hog_feat.flatten(3)  # (B, h/d, w/d, C*cells*cells)


@MODELS.register_module()
class BEVTHOGTargets(BEVTTokenizer):
    """MaskFeat HOG regression targets for `BEVT: BERT Pretraining of Video
    Transformers <https://arxiv.org/abs/2112.01529>`_.

    Wraps mmpretrain's :class:`~mmpretrain.models.selfsup.maskfeat.
    HOGGenerator` (Sobel gradients, ``nbins`` orientation bins per colour
    channel, Gaussian-weighted in windows of ``gaussian_window`` px,
    histograms summed over ``pool`` x ``pool`` cells and l2-normalised per
    cell and channel) and concatenates the histograms of the
    (``downsample`` / ``pool``)^2 cells of each target patch: D =
    3 * nbins * (downsample / pool)^2, 108 with the defaults.

    Input: ``HOGGenerator`` does no (un)normalisation. Its features are
    invariant to a per-channel affine normalisation (the gradients ignore
    the mean and the per-cell l2 normalisation cancels the std), so the
    data preprocessor can feed the ImageNet-normalised model view itself
    (mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375], as
    MaskFeat does) or raw pixels: the targets agree up to float rounding.
    The view is square (with a Gaussian window) at the model resolution:
    224 px gives 14x14 targets of 108 dims.

    The module has no weights (only constant buffers), so it never warns
    about random initialisation and ignores ``init_cfg``; its features are
    computed in float32 (there is no ``dtype`` / ``channels_last``).

    Args:
        nbins (int): Orientation bins. Defaults to 9.
        pool (int): Cell side in pixels. Defaults to 8.
        gaussian_window (int): Side of the Gaussian weighting window in
            pixels; 0 disables it. Input sides must be multiples of it.
            Defaults to 16.
        downsample (int): Target patch side in pixels, a multiple of
            ``pool``. Defaults to 16.
        init_cfg (dict | list[dict], optional): Ignored. Defaults to None.
    """

    vocab_size = None
    has_weights = False

    def __init__(self,
                 nbins: int = 9,
                 pool: int = 8,
                 gaussian_window: int = 16,
                 downsample: int = 16,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__()
        check_int('nbins', nbins)
        check_int('pool', pool)
        check_int('gaussian_window', gaussian_window, minimum=0)
        check_int('downsample', downsample)
        if downsample % pool:
            raise ValueError(f'Invalid downsample: {downsample}; expected a '
                             f'multiple of pool={pool}')
        cells = downsample // pool
        self.hog = _CellHOGGenerator(
            cells=cells,
            nbins=nbins,
            pool=pool,
            gaussian_window=gaussian_window)
        self.downsample = downsample
        self.target_dims = 3 * nbins * cells * cells
        self._freeze()

    def _check_input(self, x: Tensor, cell_mask: Optional[Tensor]) -> None:
        """Also require a square input whose side is a multiple of
        ``gaussian_window`` (``HOGGenerator`` tiles its kernel that way)."""
        super()._check_input(x, cell_mask)
        h, w = x.shape[-2:]
        window = self.hog.gaussian_window
        if window and (h != w or h % window):
            raise ValueError(
                f'Invalid input size: {(h, w)}; with gaussian_window='
                f'{window} the input must be square with a side that is a '
                f'multiple of {window}')
        if x.shape[1] != 3:
            raise ValueError(
                f'Invalid input channels: {x.shape[1]}; expected 3 (RGB)')

    def _encode(self,
                images: Tensor,
                cells: Optional[Tensor] = None) -> Tensor:
        """HOG features of a batch of images.

        Args:
            images (Tensor): Images of shape (B, 3, h, w).
            cells (Tensor, optional): Unused: every cell is computed.

        Returns:
            Tensor: float32 features of shape (B, h/d, w/d, D).
        """
        return self.hog(images)
