"""Orders: totals an order exactly (decimals, through simplejson's C extension)."""

from decimal import Decimal

import simplejson
from aws_lambda_powertools import Logger

logger = Logger(service="orders")


def handler(event, context):
    order = simplejson.loads(event.get("body") or "{}", use_decimal=True)
    items = order.get("items", [])
    total = sum((Decimal(item["price"]) * item["quantity"] for item in items), Decimal(0))
    logger.info("order received", extra={"items": len(items)})
    body = {"total": total, "c_extension": simplejson._import_c_make_encoder() is not None}
    return {"statusCode": 200, "body": simplejson.dumps(body, use_decimal=True)}
