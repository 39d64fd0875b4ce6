"""Design answers built on both paths and on calibration: what noise and on/off ratio a
tile can afford (:mod:`~rpucircuit.design.explore`), the tile's specification sheet
(:mod:`~rpucircuit.design.specs`) and the check of a designer's own peripheral circuits
(:mod:`~rpucircuit.design.verify`)."""
