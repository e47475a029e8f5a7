# The loaders and evaluators of video recognition (fine-tuning): a recipe
# sets each loader's `ann_file`, `data_prefix` and `pipeline`, and the
# training batch. mmaction2's `max_testing_views` needs one sample per
# batch in the val and test loaders.
dataset_type = 'VideoDataset'

train_dataloader = dict(
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, test_mode=True))
test_dataloader = val_dataloader

# top-1, top-5 and mean class accuracy (`acc/top1`, `acc/top5`, `acc/mean1`)
val_evaluator = dict(
    type='AccMetric',
    metric_list=('top_k_accuracy', 'mean_class_accuracy'),
    metric_options=dict(top_k_accuracy=dict(topk=(1, 5))))
test_evaluator = val_evaluator
