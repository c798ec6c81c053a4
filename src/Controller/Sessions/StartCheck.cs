namespace SmpRobot.Controller.Sessions;

/// <summary>Whether a session could start now: every refusal (each names what fixes it), and whether the machine must be homed first.</summary>
public sealed record StartCheck(IReadOnlyList<string> Refusals, bool NeedsHoming)
{
    /// <summary>Nothing refuses and the machine is homed.</summary>
    public bool Ready => Refusals.Count == 0 && !NeedsHoming;
}
