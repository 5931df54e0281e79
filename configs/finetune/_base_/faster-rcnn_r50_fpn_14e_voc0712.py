# As the VOC07 fine-tuning, but trained on VOC2007 + VOC2012 trainval
# (one pass over both per epoch, 14 epochs; mmdet's voc0712 base instead
# repeats the data 3 times over 4 epochs).
_base_ = './faster-rcnn_r50_fpn_14e_voc07.py'

data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # VOCDataset sets different `dataset_type`s in its metainfo
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                type='VOCDataset',
                data_root=data_root,
                ann_file='VOC2007/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2007/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline={{_base_.train_pipeline}}),
            dict(
                type='VOCDataset',
                data_root=data_root,
                ann_file='VOC2012/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2012/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline={{_base_.train_pipeline}})
        ]))
