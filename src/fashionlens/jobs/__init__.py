"""Many photos: the local tag job, the resumable chunk store, the Ray engine, output writers."""
