"""The peers pushgate is measured against, each written the way its library's docs show."""
