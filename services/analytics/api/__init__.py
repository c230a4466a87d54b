"""The analytics HTTP API under /api/v1/analytics: segments and settings first (their
paths would otherwise read as a figure's name), then the figures."""

from services.analytics.api.figures import router as figures
from services.analytics.api.segments import router as segments

routers = [segments, figures]
