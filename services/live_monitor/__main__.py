from services.live_monitor.main import run
from services.settings import Settings

run(Settings())
