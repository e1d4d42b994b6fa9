"""Links to finished outputs, for whoever shows a render to a person.

Remotion writes the output to ``renders/<renderId>/<outName>`` in its bucket
(``packages/serverless/src/handlers/launch.ts``, ``get-output-url``) with the ACL of
``REMOTION_PRIVACY``. With ``public`` the stored ``output_url`` opens as it is; with
``private`` (renderq's default) or ``no-acl`` it needs a signature, so ``download_url`` presigns
a GET that expires after ``OUTPUT_URL_EXPIRES_S``. Presigning is local (no request to S3).
"""

from __future__ import annotations

from shared import aws
from shared.models import Render, RenderStatus
from shared.pools import pool_named
from shared.settings import get_settings


def output_key(render: Render) -> str | None:
    """The output's key in ``render.lambda_bucket``, once the render is complete."""
    if render.status != RenderStatus.COMPLETE or not render.lambda_render_id or not render.out_name:
        return None
    return f"renders/{render.lambda_render_id}/{render.out_name}"


def download_url(render: Render, expires_in_s: int | None = None) -> str | None:
    """A link that opens the output now: the stored URL when outputs are public, a presigned
    one otherwise. None until the render is complete."""
    key = output_key(render)
    if key is None or not render.lambda_bucket:
        return None
    settings = get_settings()
    if settings.remotion_privacy == "public":
        return render.output_url
    pool = pool_named(render.lambda_pool)  # signed for the region of the render's bucket
    url: str = aws.s3_client(pool.region, pool.endpoint_url).generate_presigned_url(
        "get_object",
        Params={"Bucket": render.lambda_bucket, "Key": key},
        ExpiresIn=expires_in_s or settings.output_url_expires_s,
    )
    return url
