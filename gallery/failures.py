"""How a task's failure reads to a person: what happened, in plain words, and what to do next
(SPEC §7: "each code gets a human sentence"; UI.md: retry, change the prompt, ask an owner).

The provider's own words stay on the task (`error_message`) and show as details on its page; the
history shows these sentences, which never carry an HTTP status or an error code.
"""

from dataclasses import dataclass

RETRY, EDIT, TOP_UP = "retry", "edit", "top_up"


@dataclass(frozen=True)
class Failure:
    sentence: str
    next_step: str
    action: str  # RETRY: offer Retry; EDIT: offer "Edit prompt" (a retry would fail again); TOP_UP


LATER = "Retry it in a few minutes."
FAILURES = {
    # The task itself was refused: retrying as it is would fail again.
    "content_policy_violation": Failure(
        "The provider's safety filter blocked this prompt or its reference images.",
        "Edit the prompt or change the references, then generate again.", EDIT),
    "invalid_parameters": Failure(
        "The provider refused these settings.", "Edit the size, quality or number of images and try again.", EDIT),
    "invalid_request_error": Failure(
        "The provider refused this request.", "Edit the prompt or the settings and try again.", EDIT),
    "image_processing_error": Failure(
        "The provider could not read one of the reference images.", "Try again with other reference images.", EDIT),
    "image_dimension_mismatch": Failure(
        "The reference images' shapes do not fit the size asked for.",
        "Pick another aspect ratio or other references.", EDIT),
    "request_too_large_error": Failure(
        "The request was too large for the provider.", "Use fewer or smaller reference images.", EDIT),
    "file_rejected": Failure(
        "The provider's file service refused a reference image.", "Try again with another reference image.", EDIT),
    # The provider's account: an owner has something to do first.
    "insufficient_quota_error": Failure(
        "The provider account is out of credit.", "An owner can top it up, then retry this task.", TOP_UP),
    "authentication_error": Failure(
        "The provider refused the studio's key.",
        "Whoever runs this studio must check the provider key; then retry this task.", RETRY),
    "permission_error": Failure(
        "The provider account may not use this model.", "An owner should check the account's access, then retry.", RETRY),
    # Passing trouble, already retried by the studio.
    "generation_timeout": Failure("The provider took too long to make the images.", LATER, RETRY),
    "quota_exceeded": Failure("The provider was at capacity.", LATER, RETRY),
    "resource_exhausted": Failure("The provider ran out of resources for the moment.", LATER, RETRY),
    "generation_failed_no_content": Failure(
        "The provider finished without producing an image.", "Retry, or describe the image more concretely.", RETRY),
    "service_error": Failure("The provider had an internal error.", LATER, RETRY),
    "service_unavailable": Failure("The provider was unavailable.", LATER, RETRY),
    "internal_server_error": Failure("The provider had an internal error.", LATER, RETRY),
    "upstream_error": Failure("The provider's own upstream failed.", LATER, RETRY),
    "service_unavailable_error": Failure("The provider was unavailable.", LATER, RETRY),
    "rate_limit_error": Failure("The provider was receiving too many requests.", "Retry it in a minute.", RETRY),
    "file_quota": Failure("The provider's file storage was full.", LATER, RETRY),
    "timeout": Failure("The provider did not answer in time.", LATER, RETRY),
    "network": Failure("The studio could not reach the provider.", LATER, RETRY),
    "invalid_response": Failure("The provider sent an answer the studio could not read.", LATER, RETRY),
    "providers_resting": Failure("Every provider failed several times just now.", LATER, RETRY),
    "unknown_error": Failure("The provider failed without saying why.", LATER, RETRY),
    # The task's own journey.
    "request_cancelled": Failure("The provider cancelled this task.", "Retry it.", RETRY),
    "resource_not_found": Failure("The provider lost track of this task.", "Retry it.", RETRY),
    "budget_exceeded": Failure(
        "The provider this task was priced for failed, and the backup provider costs more than the budget has left.",
        "Retry it later, or ask an owner to raise the budget on the Usage page.", RETRY),
    "timed_out": Failure("The task did not finish in time.", "Retry it.", RETRY),
    "download_failed": Failure(
        "The images were made, but none could be downloaded from the provider.", "Retry the task.", RETRY),
    "lost_contact": Failure(
        "The studio lost contact with the provider twice while sending this task.",
        "Check the provider's dashboard, then retry if nothing was made.", RETRY),
    "reference_missing": Failure(
        "A reference image could not be found to send.", "Remix the task and add the references again.", EDIT),
    "model_unavailable": Failure(
        "No provider on this studio offers this model any more.", "Remix the task with another model.", EDIT),
    "provider_unavailable": Failure(
        "The provider that ran this task is no longer set up on this studio.", "Retry it with another provider.", RETRY),
}
UNKNOWN = Failure("The task failed.", "Retry it.", RETRY)


def describe(code):
    """The Failure for an error code (any code, even one we have never seen)."""
    if code.startswith("http_"):
        return Failure("The provider answered with an error.", LATER, RETRY)
    return FAILURES.get(code, UNKNOWN)
