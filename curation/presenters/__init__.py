"""What each page of the app shows, built without Streamlit: one module per page."""
