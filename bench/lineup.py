"""The race's lineup: every transfer contender, ours (client and Django paths) first."""

from __future__ import annotations

from boto3.s3.transfer import TransferConfig

from .contenders import (
    AwsCli,
    Contender,
    MiB,
    Ours,
    OursWithoutHash,
    RawBoto3,
    Rclone,
    S5cmd,
)
from .django_paths import OursDownloadCommand, OursFileFieldSave
from .target import Target


def peers(target: Target) -> list[Contender]:
    """Every peer of a file transfer (peers that cannot run here carry ``missing``)."""
    return [
        RawBoto3(target, "boto3 default", TransferConfig()),
        RawBoto3(
            target,
            "boto3 tuned",
            TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=10),
        ),
        S5cmd(target),
        Rclone(target),
        AwsCli(target),
    ]


def all_contenders(target: Target) -> list[Contender]:
    """Ours first (client and Django paths), then every peer."""
    return [
        Ours(target),
        OursFileFieldSave(target),
        OursDownloadCommand(target),
        OursWithoutHash(target),
        *peers(target),
    ]
