"""``python -m model_serving.development_server`` -> the click CLI."""

from model_serving.development_server.cli import main

if __name__ == "__main__":
    main()
