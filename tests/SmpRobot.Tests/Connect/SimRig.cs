using Microsoft.Extensions.Logging.Abstractions;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Connect;

/// <summary>A GantryConnection to a simulated gantry (system clock, fast time scale); every wait bounded.</summary>
internal sealed class SimRig : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private SimRig(SimulatedGantry simulator, GantryConnection connection)
    {
        Simulator = simulator;
        Connection = connection;
    }

    public SimulatedGantry Simulator { get; }
    public GantryConnection Connection { get; }
    public Controller.Gantry.GrblClient Client => Connection.RequireClient();
    public MachineProfile Profile => Connection.Profile;

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "the SimRig owns the simulator and the connection and disposes both")]
    public static async Task<SimRig> StartAsync(bool home = true, MachineProfile? profile = null)
    {
        profile ??= TestProfiles.Sim();
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200 });
        var connection = new GantryConnection(() => new InProcessGantryTransport(simulator), "sim", profile, TimeProvider.System, 200, NullLogger<GantryConnection>.Instance);
        var rig = new SimRig(simulator, connection);
        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);
        if (home) await connection.HomeAsync(CancellationToken.None).WaitAsync(Timeout);
        return rig;
    }

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        await Simulator.DisposeAsync();
    }
}
