"""The data stage: the three ActVLP post-training datasets and the VL evaluation sets.

Public entry points (each module imports ``datasets`` / PIL lazily, so ``import jvla.data`` is
light):

* :func:`jvla.data.build.build_all` - every dataset + cards, the data notebook's one call;
* :mod:`jvla.data.knowledge`, :mod:`jvla.data.frames` + :mod:`jvla.data.vision`,
  :mod:`jvla.data.trajectories`, :mod:`jvla.data.released` - one ``build`` per dataset;
* :mod:`jvla.data.schema` - the sample format; :mod:`jvla.data.reference` - eval answers and
  the rule-based scorer; :mod:`jvla.data.augment` - augmentation for the collator;
  :mod:`jvla.data.store` - save / load; :mod:`jvla.data.subsets` - the nested fractions of a
  train split (scaling figures 5 and 6);
  :mod:`jvla.data.cards` - cards and :func:`~jvla.data.cards.render_sample`.
"""
