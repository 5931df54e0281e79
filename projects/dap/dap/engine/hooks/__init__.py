from .cam_box_hook import CAMBoxHook, CAMBoxRunError, image_key

__all__ = ['CAMBoxHook', 'CAMBoxRunError', 'image_key']
