using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Sessions;

/// <summary>What moves a session from one phase to another.</summary>
public enum SessionStep
{
    /// <summary>The operator starts a new session.</summary>
    Start,

    /// <summary>The operator resumes a stopped one.</summary>
    Resume,

    /// <summary>The operator (or the dead-man, the patient, a shutdown) asks the run to pause after its current dot.</summary>
    Pause,

    /// <summary>The operator ends it for good.</summary>
    Abort,

    /// <summary>Its remaining dots move to a new session (the old one ends ABORTED).</summary>
    Continue,

    /// <summary>The run ended by itself: every dot done, a hold for the operator, a fault or an e-stop.</summary>
    RunEnded,

    /// <summary>A controller restart found it RUNNING or PAUSING.</summary>
    Recovered,
}

/// <summary>
/// Every phase transition of a session, as one table: which step may leave which phase and where it
/// goes. The lifecycle asks it before it changes anything, and its refusal texts are the operator's.
/// </summary>
public static class SessionPhases
{
    private static readonly SessionPhase[] Stopped = [SessionPhase.Paused, SessionPhase.Faulted, SessionPhase.EmergencyStopped];

    /// <summary>The table: step → (phases it may leave, phases it may lead to).</summary>
    public static readonly IReadOnlyDictionary<SessionStep, (SessionPhase[] From, SessionPhase[] To)> Table = new Dictionary<SessionStep, (SessionPhase[], SessionPhase[])>
    {
        [SessionStep.Start] = ([SessionPhase.Created], [SessionPhase.Running]),
        [SessionStep.Resume] = (Stopped, [SessionPhase.Running]),
        [SessionStep.Pause] = ([SessionPhase.Running], [SessionPhase.Pausing]),
        [SessionStep.Abort] = ([SessionPhase.Created, SessionPhase.Running, SessionPhase.Pausing, .. Stopped], [SessionPhase.Aborted]),
        [SessionStep.Continue] = ([SessionPhase.Created, SessionPhase.Aborted, .. Stopped], [SessionPhase.Aborted]),
        [SessionStep.RunEnded] = ([SessionPhase.Running, SessionPhase.Pausing], [SessionPhase.Completed, SessionPhase.Paused, SessionPhase.Aborted, SessionPhase.Faulted, SessionPhase.EmergencyStopped]),
        [SessionStep.Recovered] = ([SessionPhase.Running, SessionPhase.Pausing], [SessionPhase.Faulted]),
    };

    /// <summary>Whether <paramref name="step"/> may leave <paramref name="from"/>.</summary>
    public static bool Allows(SessionStep step, SessionPhase from) => Table[step].From.Contains(from);

    /// <summary>Whether <paramref name="step"/> may go from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool Allows(SessionStep step, SessionPhase from, SessionPhase to) => Table[step].From.Contains(from) && Table[step].To.Contains(to);

    /// <summary>COMPLETED and ABORTED: nothing leaves them.</summary>
    public static bool IsFinal(SessionPhase phase) => phase is SessionPhase.Completed or SessionPhase.Aborted;

    /// <summary>
    /// Throws <see cref="RefusedException"/> (FailedPrecondition) when <paramref name="step"/> may not
    /// leave <paramref name="from"/>, in the operator's words.
    /// </summary>
    public static void Require(SessionStep step, string sessionId, SessionPhase from)
    {
        if (Allows(step, from)) return;
        var now = Name(from);
        throw new RefusedException(RefusalKind.FailedPrecondition, step switch
        {
            SessionStep.Start => $"session {sessionId} is {now}; only a CREATED session can be started (use resume)",
            SessionStep.Resume => $"session {sessionId} is {now}; only a PAUSED, FAULTED or EMERGENCY_STOPPED session can be resumed",
            SessionStep.Pause => $"session {sessionId} is {now}; only a RUNNING session can be paused",
            SessionStep.Abort => $"session {sessionId} is already {now}",
            SessionStep.Continue => $"session {sessionId} is {now}; only a stopped session (PAUSED, FAULTED, EMERGENCY_STOPPED, ABORTED or CREATED) can be continued in a new one",
            _ => $"session {sessionId} is {now}: {step} does not apply",
        });
    }

    /// <summary>The proto-style upper-case name of a phase, for messages.</summary>
    public static string Name(SessionPhase phase) => phase switch
    {
        SessionPhase.EmergencyStopped => "EMERGENCY_STOPPED",
        _ => phase.ToString().ToUpperInvariant(),
    };
}
