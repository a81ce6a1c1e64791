# The skeleton's methods raise NotImplementedError, so its suite would only fail: keep the
# repository's test run out of it. Delete this file in your copy.
collect_ignore = ["tests"]
