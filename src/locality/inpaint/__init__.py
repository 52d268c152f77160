"""The inpainting example of note 001: a U-Net of partial convolutions (Liu et al., 2018).

``masks`` draws irregular stroke masks, ``images`` loads the bundled images and the train/test
split, ``unet`` is the model (and its ordinary-convolution ablation), ``train`` its loss and loop,
``evaluate`` the scores against classical methods, ``report`` the results files, ``checkpoint``
the shipped weights. Needs the ``inpaint`` extra (scikit-image, OpenCV, scikit-learn,
matplotlib), imported only where used: ``pip install 'locality[inpaint]'``.
"""
