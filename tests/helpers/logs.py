"""What the mmengine logger gets while a function runs."""
import logging

from mmengine.logging import MMLogger


def logged(fn):
    """``(fn(), [(level, message), ...])`` of the current mmengine logger's
    records during the call."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        result = fn()
    finally:
        logger.removeHandler(handler)
    return result, [(r.levelno, r.getMessage()) for r in records]
