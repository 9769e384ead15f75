from .limits import Throttle  # noqa: F401
from .providers import ProviderBalance, ProviderCall, ProviderResult  # noqa: F401
from .tasks import (  # noqa: F401
    FINAL_STATES,
    GalleryImage,
    GenerationTask,
    IllegalTransition,
    LeaseLost,
    ReferenceImage,
    SandboxRun,
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
