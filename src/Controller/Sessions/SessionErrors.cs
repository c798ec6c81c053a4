namespace SmpRobot.Controller.Sessions;

/// <summary>What kind of refusal a <see cref="SessionException"/> is (mapped to a gRPC status by the service).</summary>
public enum SessionErrorKind
{
    NotFound,
    FailedPrecondition,
    InvalidArgument,
}

/// <summary>A session operation was refused; the message says why in the operator's words.</summary>
public sealed class SessionException(SessionErrorKind kind, string message) : Exception(message)
{
    public SessionErrorKind Kind { get; } = kind;
}

/// <summary>Whether a session could start now: every refusal (each names what fixes it), and whether the machine must be homed first.</summary>
public sealed record StartCheck(IReadOnlyList<string> Refusals, bool NeedsHoming)
{
    /// <summary>Nothing refuses and the machine is homed.</summary>
    public bool Ready => Refusals.Count == 0 && !NeedsHoming;
}
