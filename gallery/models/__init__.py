from .api import ApiFile, ApiKey, CallbackAttempt, CallbackDelivery, Delivery, IdempotencyRecord  # noqa: F401
from .costs import Charge  # noqa: F401
from .images import GalleryImage  # noqa: F401
from .limits import RateWindow, Throttle  # noqa: F401
from .providers import ProviderCall, ProviderState, SandboxRun  # noqa: F401
from .tasks import (  # noqa: F401
    FINAL_STATES,
    GenerationTask,
    IllegalTransition,
    LeaseLost,
    ReferenceImage,
    Status,
    WorkerHeartbeat,
)
from .teams import (  # noqa: F401
    Instance,
    Invite,
    InviteError,
    InviteForSomeoneElse,
    LastOwnerError,
    Membership,
    Role,
    Team,
    User,
)
