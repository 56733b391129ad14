"""The utility audit: does segmentation trained on synthetic slices work on real subjects?

Modules, in pipeline order (importing this package imports nothing heavy):

* :mod:`~synthgate.segment.data`: labelled sets as WT/TC/ET targets, from each set's label map;
* :mod:`~synthgate.segment.models`: MONAI 2D ``UNet`` and ``SwinUNETR`` with one sigmoid output per region;
* :mod:`~synthgate.segment.augment`: flips, affine and intensity augmentation of a whole batch on its device;
* :mod:`~synthgate.segment.train`: Dice + BCE, AdamW, polynomial LR decay, augmentation, best epoch;
* :mod:`~synthgate.segment.evaluate`: Dice per subject over its restacked slices;
* :mod:`~synthgate.segment.utility`: ``UtilityConfig``, ``run_utility`` (real, synthetic and mixed training);
* :mod:`~synthgate.segment.report`: ``write_utility_outputs`` (``utility.json``, ``utility.png``, fragment).
"""
