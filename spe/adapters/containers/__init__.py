"""HPC container runtimes, the image store, and the driver that runs a TES task's
executors inside its job."""
