from .providers import ProviderCall, ProviderResult  # noqa: F401
from .tasks import (  # noqa: F401
    FINAL_STATES,
    GalleryImage,
    GenerationTask,
    IllegalTransition,
    ReferenceImage,
    SandboxRun,
    Status,
    WorkerHeartbeat,
)
from .teams import (  # noqa: F401
    Invite,
    InviteError,
    LastOwnerError,
    Membership,
    Role,
    Team,
    User,
)
