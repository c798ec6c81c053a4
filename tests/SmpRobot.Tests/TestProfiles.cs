using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests;

/// <summary>Profiles for tests: the bundled hardware/ files, so tests exercise what ships.</summary>
internal static class TestProfiles
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static MachineProfile Desk() => MachineProfile.Load(Path.Combine(RepoRoot, "hardware", "profiles", "desk-200.json"));

    public static MachineProfile Sim() => MachineProfile.Load(Path.Combine(RepoRoot, "hardware", "profiles", "sim.json"));

    /// <summary>The simulated gantry on a grbl built with HOMING_FORCE_SET_ORIGIN: home is (0, 0, 0), X/Y run [0, 200], Z [−40, 0].</summary>
    public static MachineProfile SimOrigin() => MachineProfile.Load(Path.Combine(RepoRoot, "hardware", "profiles", "sim-origin.json"));

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SmpRobot.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (SmpRobot.sln) above " + AppContext.BaseDirectory);
    }
}
