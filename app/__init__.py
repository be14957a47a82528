"""The curator's Streamlit app: thin pages over curation/ (run with `streamlit run app/Home.py`)."""
