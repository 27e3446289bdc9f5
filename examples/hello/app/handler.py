"""A Lambda handler whose dependency (markupsafe) has a C extension."""

import markupsafe
import six


def handler(event, context):
    name = (event or {}).get("name", "<world>")
    return {"body": str(markupsafe.escape(f"Hello, {name}!")), "six": six.__version__}
