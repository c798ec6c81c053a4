using System.Runtime.CompilerServices;

namespace SmpRobot.Tests;

internal static class TestAssemblySetup
{
    /// <summary>
    /// Many test classes run in parallel on a 2-core machine, some doing synchronous file and SQLite
    /// work; a thread pool that grows one thread per half second would then delay the real-time
    /// parts under test (operator heartbeats, the controller's per-dot cycle) by whole seconds.
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize()
    {
        ThreadPool.SetMinThreads(64, 64);
        // OpenCV as the controller runs it (before any OpenCV call here).
        SmpRobot.Vision.OpenCvRuntime.ConfigureIpp();
    }
}

/// <summary>Tests that run a whole controller share the machine one at a time, like the real machine.</summary>
[CollectionDefinition(Name)]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Maintainability", "CA1515", Justification = "xunit finds collection definitions only on public classes (xUnit1027)")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "an xunit test-collection definition, named the way xunit names them; the test classes refer to it by this name")]
public sealed class ControllerCollection
{
    public const string Name = "controller";
}
