"""View components shared by the app's pages: connections and cached data, filters in the URL, review actions,
and the parts of the sample view."""
