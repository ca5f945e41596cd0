"""A class route: one ``Counter`` per connection (``counter.add``, ``counter.get``)."""
