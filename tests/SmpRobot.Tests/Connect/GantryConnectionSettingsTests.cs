using Microsoft.Extensions.Logging.Abstractions;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Connect;

/// <summary>GantryConnection reads $$ on every (re)connect and keeps the differences from its profile.</summary>
public sealed class GantryConnectionSettingsTests : IAsyncDisposable
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly List<IAsyncDisposable> _owned = [];

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
    }

    private SimulatedGantry Simulator(MachineProfile profile)
    {
        var sim = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 100 });
        _owned.Add(sim);
        return sim;
    }

    private GantryConnection Connection(Func<IGantryTransport> transport, MachineProfile profile)
    {
        var connection = new GantryConnection(transport, "sim", profile, TimeProvider.System, 100, NullLogger<GantryConnection>.Instance);
        _owned.Add(connection);
        return connection;
    }

    [Fact]
    public async Task Before_connecting_sessions_are_refused_because_nothing_was_checked()
    {
        var profile = TestProfiles.Sim();
        var sim = Simulator(profile);
        var connection = Connection(() => new InProcessGantryTransport(sim), profile);

        Assert.False(connection.SettingsChecked);
        Assert.Contains("not been checked", connection.SettingsMismatch, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_board_with_the_profile_settings_matches_and_still_needs_homing()
    {
        var profile = TestProfiles.Sim();
        var sim = Simulator(profile);
        var connection = Connection(() => new InProcessGantryTransport(sim), profile);

        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.True(connection.SettingsChecked);
        Assert.Empty(connection.SettingsDifferences);
        Assert.Null(connection.SettingsMismatch);
        Assert.Equal("", connection.SettingsError);
        Assert.True(connection.IsConnected);
        Assert.False(connection.IsHomed);
        await connection.HomeAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.True(connection.IsHomed);
    }

    [Fact]
    public async Task A_board_configured_differently_is_reported_setting_by_setting()
    {
        var profile = TestProfiles.Sim();
        // The board was set up for a screw X axis and a smaller table.
        var board = profile with { StepsPerMm = profile.StepsPerMm with { X = 100 }, MaxTravelMm = profile.MaxTravelMm with { Y = 150 } };
        var sim = Simulator(board);
        var connection = Connection(() => new InProcessGantryTransport(sim), profile);

        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.True(connection.SettingsChecked);
        Assert.Equal([(100, "80.000", "100.000"), (131, "200.000", "150.000")], connection.SettingsDifferences.Select(d => (d.Number, d.Expected, d.Actual)));
        var refusal = connection.SettingsMismatch;
        Assert.NotNull(refusal);
        Assert.Contains("$100 (X steps/mm): profile 80.000, board 100.000", refusal, StringComparison.Ordinal);
        Assert.Contains("$131 (Y max travel, mm): profile 200.000, board 150.000", refusal, StringComparison.Ordinal);

        // The same board read against the profile it was set up for matches.
        Assert.Empty(await connection.ReadSettingsDifferencesAsync(FirmwareSettings.Expected(board), CancellationToken.None).WaitAsync(Timeout));
        Assert.Equal(2, connection.SettingsDifferences.Count); // the connection's own check is unchanged
    }

    [Fact]
    public async Task A_reconnect_checks_the_settings_again_and_forgets_homing()
    {
        var profile = TestProfiles.Sim();
        var matching = Simulator(profile);
        var other = Simulator(profile with { AccelerationMmPerS2 = profile.AccelerationMmPerS2 with { Z = 100 } });
        var boards = new Queue<SimulatedGantry>([matching, other, matching]);
        var connection = Connection(() => new InProcessGantryTransport(boards.Dequeue()), profile);

        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Null(connection.SettingsMismatch);
        await connection.HomeAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.True(connection.IsHomed);

        // Another board behind the same port (re-plugged, re-flashed): its settings count now.
        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.False(connection.IsHomed);
        var difference = Assert.Single(connection.SettingsDifferences);
        Assert.Equal((122, "400.000", "100.000"), (difference.Number, difference.Expected, difference.Actual));
        Assert.NotNull(connection.SettingsMismatch);

        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Empty(connection.SettingsDifferences);
        Assert.Null(connection.SettingsMismatch);
        Assert.False(connection.IsHomed); // a hard reset on open loses the position: home again
    }

    [Fact]
    public async Task Check_mode_is_exclusive_and_blocks_homing_and_settings_reads()
    {
        var profile = TestProfiles.Sim();
        var sim = Simulator(profile);
        var connection = Connection(() => new InProcessGantryTransport(sim), profile);
        await connection.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);

        using (connection.BeginCheckMode())
        {
            Assert.True(connection.IsChecking);
            Assert.Throws<InvalidOperationException>(() => connection.BeginCheckMode());
            await Assert.ThrowsAsync<InvalidOperationException>(() => connection.HomeAsync(CancellationToken.None)).WaitAsync(Timeout);
            await Assert.ThrowsAsync<InvalidOperationException>(() => connection.ReadSettingsDifferencesAsync(connection.ExpectedSettings, CancellationToken.None)).WaitAsync(Timeout);
        }
        Assert.False(connection.IsChecking);
        connection.BeginCheckMode().Dispose();
    }
}
