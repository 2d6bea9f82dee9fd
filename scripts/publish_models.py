"""Upload models/ (the manifest and every file it names) to the model bucket, checksums verified.

    python scripts/publish_models.py --bucket BUCKET [--prefix models/] [--endpoint-url URL]
    python scripts/publish_models.py --stack STACK   # the bucket the stack's ModelBucketName output names

The manifest is checked first with the library's own parser (the one the functions
use), so a manifest they would refuse is never uploaded. Each file is checked against
the sha256 the manifest gives before it is sent, and sent with that checksum so S3
verifies it too. The manifest goes last, so a reader never sees a manifest naming
files that are not there yet. Nothing is uploaded unless every check passes.

The manifest is uploaded as JSON (the same document, its comments left out): the functions
read JSON without a YAML parser, which their cold start would otherwise import.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
sys.path.insert(0, str(ROOT / "layers" / "prediction"))

from prediction_service.catalog.manifest import Manifest, document  # noqa: E402
from prediction_service.errors import ManifestError  # noqa: E402


def validated(raw: bytes, what: str) -> Manifest:
    """The manifest as the functions parse it. Raises ValueError, with the parser's reasons, if they
    would refuse it (`what` names it in the message)."""
    try:
        return Manifest.parse(raw)
    except ManifestError as exc:
        raise ValueError(f"{what} is refused by the functions' parser: {exc.detail}") from exc


def manifest_files(models_dir: Path) -> dict[str, str]:
    """Relative path -> expected sha256 for every file the manifest names.

    Raises ValueError, with the parser's reasons, if the functions would refuse the manifest."""
    manifest = validated((models_dir / "manifest.yaml").read_bytes(), "manifest.yaml")
    files: dict[str, str] = {}
    for model in manifest.models:
        for ref in model.files():  # an ensemble has none: its members have theirs
            files[ref.file] = ref.sha256
    return files


# Text models are built by models/build_text_model.py (`make text-model`) and not committed:
# their manifest entries are added at publish time, with the checksums of the built files.
TEXT_MODELS = (
    ("all-minilm-l6-v2", "all-minilm-l6-v2.int8.onnx", "sentence embeddings (384 floats), INT8: 30 MB"),
    ("all-minilm-l6-v2-fp32", "all-minilm-l6-v2.fp32.onnx", "sentence embeddings (384 floats), FP32: 90 MB"),
)
TOKENIZER = "tokenizer.json"


def text_model_entries(text_dir: Path) -> tuple[str, dict[str, Path]]:
    """The manifest entries of the built text models, and where each of their files is."""
    files = {f"text/{TOKENIZER}": text_dir / TOKENIZER}
    tokenizer_sha = hashlib.sha256(files[f"text/{TOKENIZER}"].read_bytes()).hexdigest()
    lines = ["", "  # added by scripts/publish_models.py from models/build_text_model.py's output"]
    for name, built, description in TEXT_MODELS:
        files[f"text/{built}"] = text_dir / built
        digest = hashlib.sha256((text_dir / built).read_bytes()).hexdigest()
        lines += [
            f"  - name: {name}", "    kind: text-embedding", f"    file: text/{built}", f"    sha256: {digest}",
            f"    description: {json.dumps(description)}", "    max_tokens: 256",
            f"    tokenizer: {{file: text/{TOKENIZER}, sha256: {tokenizer_sha}}}",
        ]
    return "\n".join(lines) + "\n", files


def publish(
    s3: Any, bucket: str, prefix: str = "models/", models_dir: Path = MODELS_DIR, text_models: Path | None = None
) -> list[str]:
    """Upload and return the keys written, manifest last. Raises ValueError, before uploading
    anything, if the manifest is invalid or a file does not match its checksum. `text_models`:
    a directory models/build_text_model.py wrote, whose models are published too."""
    manifest = (models_dir / "manifest.yaml").read_bytes()
    sources = {relative: (models_dir / relative, expected) for relative, expected in manifest_files(models_dir).items()}
    if text_models is not None:
        entries, text_files = text_model_entries(text_models)
        manifest = manifest.rstrip(b"\n") + b"\n" + entries.encode()
        validated(manifest, "the manifest with the text models")  # the combined manifest must parse too
        sources.update({relative: (path, None) for relative, path in text_files.items()})
    bodies = {}
    for relative, (path, expected) in sorted(sources.items()):
        body = path.read_bytes()
        digest = hashlib.sha256(body)
        if expected is not None and digest.hexdigest() != expected:
            raise ValueError(f"{relative}: sha256 {digest.hexdigest()} does not match the manifest ({expected})")
        bodies[relative] = (body, base64.b64encode(digest.digest()).decode())
    written = []
    for relative, (body, checksum) in bodies.items():
        s3.put_object(Bucket=bucket, Key=prefix + relative, Body=body, ChecksumSHA256=checksum)
        written.append(prefix + relative)
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.yaml", Body=as_json(manifest), ContentType="application/json")
    written.append(prefix + "manifest.yaml")
    return written


def as_json(manifest: bytes) -> bytes:
    """The (already validated) manifest as JSON: the same document, without its comments."""
    return json.dumps(document(manifest), indent=2).encode() + b"\n"


def stack_output(stack: str, key: str) -> str:
    (described,) = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return outputs[key]


def add_bucket_arguments(parser: argparse.ArgumentParser) -> None:
    """`--bucket`, or `--stack` (a deployed stack of this template: its model bucket), and `--endpoint-url`."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bucket")
    target.add_argument("--stack", help="a deployed stack of this template: its model bucket")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint, e.g. a local moto server")


def model_bucket(args: argparse.Namespace) -> str:
    """The bucket the arguments name, directly or through the stack's ModelBucketName output."""
    return args.bucket or stack_output(args.stack, "ModelBucketName")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bucket_arguments(parser)
    parser.add_argument("--prefix", default="models/")
    parser.add_argument("--text-models", type=Path, default=None,
                        help="also publish the text models models/build_text_model.py built into this directory")
    args = parser.parse_args(argv)
    args.bucket = model_bucket(args)
    s3 = boto3.client("s3", endpoint_url=args.endpoint_url)
    try:
        for key in publish(s3, args.bucket, args.prefix, text_models=args.text_models):
            print(f"uploaded s3://{args.bucket}/{key}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
