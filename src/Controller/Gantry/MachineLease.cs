namespace SmpRobot.Controller.Gantry;

/// <summary>What holds the machine: one of these at a time moves it.</summary>
public enum MachineUse
{
    /// <summary>A session's run (from its start or resume to its end).</summary>
    Session,

    /// <summary>A calibration procedure that moves the gantry (gantry calibration, drift check).</summary>
    Calibration,

    /// <summary>A program streamed in the firmware's check mode (<c>$C</c>): nothing may be streamed for real.</summary>
    Check,

    /// <summary>A manual jog.</summary>
    Jog,

    /// <summary>The homing cycle.</summary>
    Home,

    /// <summary>Probing the scalp and registering the head model to it.</summary>
    Surface,
}

/// <summary>Who holds the machine now.</summary>
/// <param name="Use">What kind of use.</param>
/// <param name="What">Its name for messages: "session s-…", "gantry calibration", "drift check", "check mode", "jog", "homing cycle".</param>
public sealed record MachineHolder(MachineUse Use, string What)
{
    /// <summary>The one text that says the machine is taken, for every refusal: "session s-1 is running", "a gantry calibration is already running".</summary>
    public string BusyText => Use == MachineUse.Session ? What + " is running" : $"a {What} is already running";
}

/// <summary>
/// The machine's single owner. Sessions, calibrations, check mode, jogs and homing each take the
/// lease for as long as they move the machine (or, for check mode, stream to it); a second taker is
/// refused with the holder's <see cref="MachineHolder.BusyText"/>. One compare-and-set decides, so two
/// takers starting at the same moment cannot both win. Thread-safe; emergency stops and stop
/// sequences never take it (they act ahead of every holder).
/// </summary>
public sealed class MachineLease
{
    private MachineHolder? _holder;

    /// <summary>Who holds the machine now, or null when it is free.</summary>
    public MachineHolder? Holder => Volatile.Read(ref _holder);

    /// <summary>
    /// Takes the lease for <paramref name="use"/> until the returned scope is disposed (disposing twice
    /// releases once). Returns null, with <paramref name="holder"/> set to who has it, when it is taken.
    /// </summary>
    public IDisposable? TryAcquire(MachineUse use, string what, out MachineHolder? holder)
    {
        var mine = new MachineHolder(use, what);
        holder = Interlocked.CompareExchange(ref _holder, mine, null);
        return holder is null ? new Scope(this, mine) : null;
    }

    /// <summary>Takes the lease or throws <see cref="RefusedException"/> (FailedPrecondition): "cannot <paramref name="action"/>: …".</summary>
    /// <param name="use">What takes it.</param>
    /// <param name="what">Its name for other takers' messages (see <see cref="MachineHolder.What"/>).</param>
    /// <param name="action">What the caller wanted to do, for the refusal: "jog", "run the drift check".</param>
    public IDisposable Acquire(MachineUse use, string what, string action) =>
        TryAcquire(use, what, out var holder) ?? throw new RefusedException(RefusalKind.FailedPrecondition, $"cannot {action}: {holder!.BusyText}");

    private sealed class Scope(MachineLease lease, MachineHolder mine) : IDisposable
    {
        public void Dispose() => Interlocked.CompareExchange(ref lease._holder, null, mine);
    }
}
