namespace SmpRobot.Controller;

/// <summary>What kind of refusal a <see cref="RefusedException"/> is (mapped to a gRPC status by the service layer).</summary>
public enum RefusalKind
{
    /// <summary>The named thing (session, calibration, dot) does not exist.</summary>
    NotFound,

    /// <summary>The request is well formed but the machine or the session is not in a state that allows it.</summary>
    FailedPrecondition,

    /// <summary>The request itself is wrong (a bad value, a missing reason); nothing was changed.</summary>
    InvalidArgument,
}

/// <summary>
/// An operation was refused before it changed anything; the message says why in the operator's words
/// and names what fixes it. Neutral ground for Sessions, Calibration and the machine's readiness check,
/// so none of them depends on another for its errors.
/// </summary>
public class RefusedException(RefusalKind kind, string message) : Exception(message)
{
    /// <summary>Which gRPC status the refusal becomes.</summary>
    public RefusalKind Kind { get; } = kind;
}
