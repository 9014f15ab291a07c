"""Open-Sora Plan v1.3 (text-to-video): its transformer, WF-VAE and backend, written in this project."""
