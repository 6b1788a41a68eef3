"""Shared machinery: resources, store, controllers, scheduler, artifacts, config."""
