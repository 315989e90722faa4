"""The browsable replication report: a static site under ``results/site/`` (the ``report`` stage).

Built by :func:`jvla.report.site.build.build_site` from what the pipeline wrote under
``results/``; it reads result files only and never reruns anything. Layout of the site::

    index.html                 one row per paper table and figure: the paper's numbers (reported)
                               beside ours, the verdict of the matching claim, links
    settings.html              the evaluation settings; settings/<setting>.html: per-task success
                               with Wilson intervals, the rollout videos (success / failure)
    notebooks.html             every executed notebook; notebooks/<stage>/<name>.html (nbconvert)
    data.html, data/<name>.html  the data cards
    training.html              the training loss curves and the table of training runs
    config.html                the run configuration: profile, resolved params, git commit, versions
    static/                    site.css, site.js and notebook.css (JupyterLab's, from nbconvert)

Figures, videos and notebook sources are linked in place under ``results/`` (``../figures/...``,
``../evaluate/<setting>/videos/...``), not copied: the site is read from a checkout, where
``results/`` is committed whole. Nothing is fetched from the network: every style sheet and
script is a local file (:mod:`jvla.report.site.notebooks` strips nbconvert's CDN scripts).

Modules: :mod:`~jvla.report.site.artefacts` (the index rows), :mod:`~jvla.report.site.settings`
(the settings pages), :mod:`~jvla.report.site.notebooks` (notebooks as HTML),
:mod:`~jvla.report.site.provenance` (the run configuration), :mod:`~jvla.report.site.build`
(pages from the Jinja2 templates in ``templates/``).

This is its own package so that its templates are data of the report stage alone: the other
stages' code closures (:mod:`jvla.closure`) do not reach them.
"""
