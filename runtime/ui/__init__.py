"""The dashboard (`uet ui`) and the run report (`uet report --html`).

app.py routes · data.py what Temporal, the artifact store and the telemetry database say ·
timeline.py the Gantt rows · render.py SVG and HTML pieces · pages.py the templates ·
live.py server-sent updates · security.py token, CSRF, origin and host checks ·
report.py one self-contained HTML file.
"""
