"""The app's favicon, shipped with it: a Material Symbol as a page icon makes the browser fetch an SVG from
fonts.gstatic.com (Streamlit's frontend builds that URL), which fails offline; icons inside a page come from the font
Streamlit bundles and need nothing else."""

from pathlib import Path

# A file path: Streamlit inlines an SVG file as a data: URL (streamlit.elements.lib.image_utils.image_to_url).
PAGE_ICON = str(Path(__file__).with_name("page_icon.svg"))
