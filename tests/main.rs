mod env_smoke;
