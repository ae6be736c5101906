"""``python -m model_serving.production_server`` -> the click CLI (``drift``)."""

from model_serving.production_server.cli import main

if __name__ == "__main__":
    main()
