"""File-system safety shared by the pipeline and the trainer (neither imports the other): folder locks and the
full-disk check. Standard library only.

    from safeio import disk, locks
    with locks.hold("data/captcha", locks.DATASET_LOCK, shared=True):  # a training reads the dataset
        ...
"""
