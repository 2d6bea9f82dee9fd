"""What is served: the manifest (every model entry, its versions and aliases) and the routing of a
request to one version."""
