"""``python -m resnet_course``: the command-line trainer (see :mod:`resnet_course.distributed`).

python -m resnet_course --help
python -m resnet_course --arch resnet20 --data shapes10 --epochs 30 --batch-size 128
torchrun --nproc_per_node=8 -m resnet_course --arch resnet50 --data /data/imagenet
"""

from .distributed import cli

if __name__ == "__main__":
    cli()
