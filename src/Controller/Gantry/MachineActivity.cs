namespace SmpRobot.Controller.Gantry;

/// <summary>What an operation moving the machine outside a session has done so far.</summary>
/// <param name="Name">"homing", "gantry calibration", "drift check", "intrinsics calibration", "jog".</param>
/// <param name="StepsDone">Stops (or views, moves) finished.</param>
/// <param name="StepsTotal">Stops planned; 0 when the operation has no countable steps (homing: one firmware cycle).</param>
/// <param name="StartedAt">When it began (the controller's clock, UTC).</param>
/// <param name="Step">What it does now, e.g. "stop 4: moving"; empty when nothing finer is known.</param>
public sealed record ActivityProgress(string Name, int StepsDone, int StepsTotal, DateTimeOffset StartedAt, string Step);

/// <summary>
/// The operation that moves the machine outside a session, and its progress, for whoever reads the machine
/// status (the console shows stops done / total, elapsed time and an ETA). The machine has one owner at a time;
/// an activity begun inside another (homing inside a calibration's preparation) shows while it runs and gives the
/// outer one back when it ends. Thread-safe.
/// </summary>
public sealed class MachineActivity(TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly List<ActivityScope> _open = [];
    private long _lastEndedTimestamp;

    /// <summary>The innermost activity now, or null when nothing moves the machine outside a session.</summary>
    public ActivityProgress? Current
    {
        get
        {
            lock (_gate) return _open.Count == 0 ? null : _open[^1].Progress;
        }
    }

    /// <summary>
    /// The activity now and when the last one ended (a <see cref="TimeProvider"/> timestamp; 0 before any
    /// ended), read together. A status report read after that end measures the machine after it.
    /// </summary>
    public (ActivityProgress? Current, long LastEndedTimestamp) Read()
    {
        lock (_gate) return (_open.Count == 0 ? null : _open[^1].Progress, _lastEndedTimestamp);
    }

    /// <summary>Begins <paramref name="name"/> with <paramref name="stepsTotal"/> steps (0 = not countable); dispose the scope when it ends, however it ends.</summary>
    public ActivityScope Begin(string name, int stepsTotal = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegative(stepsTotal);
        var scope = new ActivityScope(this, new ActivityProgress(name, 0, stepsTotal, time.GetUtcNow(), ""));
        lock (_gate) _open.Add(scope);
        return scope;
    }

    /// <summary>The lock under which the open activities and their progress change.</summary>
    internal Lock Gate => _gate;

    internal void End(ActivityScope scope)
    {
        lock (_gate)
        {
            if (_open.Remove(scope)) _lastEndedTimestamp = time.GetTimestamp();
        }
    }
}

/// <summary>One activity's handle (<see cref="MachineActivity.Begin"/>): report its steps, then dispose it.</summary>
public sealed class ActivityScope : IDisposable
{
    private readonly MachineActivity _owner;

    internal ActivityScope(MachineActivity owner, ActivityProgress progress)
    {
        _owner = owner;
        Progress = progress;
    }

    /// <summary>This activity's progress (written under the owner's lock).</summary>
    public ActivityProgress Progress { get; private set; }

    /// <summary>Says what the current step does (e.g. "stop 4: moving").</summary>
    public void Doing(string step) => Change(p => p with { Step = step });

    /// <summary>One more step done.</summary>
    public void StepDone() => Change(p => p with { StepsDone = p.StepsDone + 1 });

    /// <summary>The plan grew (touch-offs after the stops): <paramref name="stepsTotal"/> steps in all.</summary>
    public void SetTotal(int stepsTotal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepsTotal);
        Change(p => p with { StepsTotal = stepsTotal });
    }

    private void Change(Func<ActivityProgress, ActivityProgress> change)
    {
        lock (_owner.Gate) Progress = change(Progress);
    }

    public void Dispose() => _owner.End(this);
}
