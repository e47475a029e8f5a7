# The nano Video Swin (embed 32, depths 1-1-2-1, window 4x4x4), small enough
# to train on a CPU: one definition for the BEVT nano model
# (`bevt_swin_nano.py`) and the nano recognizer (`swin_nano.py`), so that a
# nano BEVT checkpoint always fine-tunes the nano recognizer.
nano_arch = dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
nano_window_size = (4, 4, 4)
