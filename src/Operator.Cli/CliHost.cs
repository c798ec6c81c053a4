namespace SmpRobot.Operator.Cli;

/// <summary>
/// What <c>smp</c> needs from its surroundings, so the whole CLI runs in tests without a console:
/// environment, clock, terminal capabilities, Ctrl+C and key input, and how to reach the controller.
/// </summary>
internal sealed class CliHost
{
    /// <summary>Environment variable lookup (SMP_CONTROLLER, SMP_CONTROLLER_EXE, SMP_HARDWARE_DIR).</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>True when stdout is a terminal: the live view is allowed.</summary>
    public bool StdoutIsTerminal { get; init; }

    /// <summary>Key input for the live view; null when stdin is not a console.</summary>
    public IKeyInput? Keys { get; init; }

    /// <summary>Ctrl+C notifications; null when nothing delivers them (tests).</summary>
    public IInterruptSource? Interrupts { get; init; }

    /// <summary>Folder of the running <c>smp</c> (for <c>smp-controller</c> and the bundled hardware/plans).</summary>
    public string BaseDirectory { get; init; } = AppContext.BaseDirectory;

    /// <summary>Opens the channels to a controller; tests may point this at an in-process server.</summary>
    public Func<Uri, ControllerAccess, ControllerConnection> Connect { get; init; } = ControllerConnection.Create;

    /// <summary>Operator name recorded with heartbeats and dot resolutions.</summary>
    public string OperatorName { get; init; } = Environment.UserName;

    /// <summary>No terminal, no keys, no Ctrl+C hook: what tests and pipes get.</summary>
    public static CliHost NonInteractive() => new();

    /// <summary>The real console: terminal detection, key input and a Ctrl+C hook.</summary>
    public static CliHost ForConsole() => new()
    {
        StdoutIsTerminal = !Console.IsOutputRedirected,
        Keys = Console.IsInputRedirected ? null : new ConsoleKeyInput(),
        Interrupts = new ConsoleInterrupts(),
    };
}

/// <summary>Delivers Ctrl+C to whoever supervises a session (it becomes an emergency stop).</summary>
internal interface IInterruptSource
{
    /// <summary>
    /// While the returned handle lives, Ctrl+C does not end the process; <paramref name="onInterrupt"/> runs instead
    /// (on a thread-pool thread, so it must be quick and thread-safe).
    /// </summary>
    IDisposable Subscribe(Action onInterrupt);
}

/// <summary>Raw key input for the live view.</summary>
internal interface IKeyInput
{
    /// <summary>Makes Ctrl+C arrive as a key rather than a signal until disposed.</summary>
    IDisposable EnterRawMode();

    /// <summary>A key if one is waiting; never blocks.</summary>
    bool TryReadKey(out ConsoleKeyInfo key);
}

internal sealed class ConsoleInterrupts : IInterruptSource
{
    private readonly Lock gate = new();
    private readonly List<Action> handlers = [];
    private bool hooked;

    public IDisposable Subscribe(Action onInterrupt)
    {
        lock (gate)
        {
            handlers.Add(onInterrupt);
            if (!hooked)
            {
                Console.CancelKeyPress += OnCancelKeyPress;
                hooked = true;
            }
        }
        return new Unsubscriber(this, onInterrupt);
    }

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
    {
        Action[] current;
        lock (gate) current = [.. handlers];
        if (current.Length == 0) return; // nobody supervises: default Ctrl+C behaviour (end the process)
        e.Cancel = true;
        foreach (var handler in current) handler();
    }

    private sealed class Unsubscriber(ConsoleInterrupts owner, Action handler) : IDisposable
    {
        public void Dispose()
        {
            lock (owner.gate) owner.handlers.Remove(handler);
        }
    }
}

internal sealed class ConsoleKeyInput : IKeyInput
{
    public IDisposable EnterRawMode()
    {
        var previous = Console.TreatControlCAsInput;
        Console.TreatControlCAsInput = true;
        return new Restore(previous);
    }

    public bool TryReadKey(out ConsoleKeyInfo key)
    {
        if (Console.KeyAvailable)
        {
            key = Console.ReadKey(intercept: true);
            return true;
        }
        key = default;
        return false;
    }

    private sealed class Restore(bool previous) : IDisposable
    {
        public void Dispose() => Console.TreatControlCAsInput = previous;
    }
}
