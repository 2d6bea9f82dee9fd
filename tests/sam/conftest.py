"""The `sam local` fixtures (tests/sam/sam_local.py) for every test here: Docker and the Lambda image,
`sam build` and moto on the bridge, each set up once a session whichever module asks first."""

from sam_local import lambda_image, moto_on_bridge, sam_built, sam_env, sam_local  # noqa: F401 - fixtures
