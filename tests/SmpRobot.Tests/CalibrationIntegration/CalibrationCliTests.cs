using System.Text.Json.Nodes;
using SmpRobot.Tests.Cli;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary><c>smp calibrate …</c> against a real controller on the simulator.</summary>
[Collection(CalibrationCollection.Name)]
public sealed class CalibrationCliTests
{
    [Fact]
    public async Task Intrinsics_gantry_check_and_list_from_the_command_line()
    {
        await using var c = await CalibrationHost.StartAsync();
        await c.HomeAsync();
        var folder = Directory.CreateTempSubdirectory("smp-cal-cli-").FullName;
        try
        {
            var (code, stdout, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "list"));
            Assert.True(code == 0, stderr);
            Assert.Contains("no calibrations stored", stdout, StringComparison.Ordinal);

            var viewsPng = Path.Combine(folder, "views.png");
            (code, stdout, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "intrinsics", "--camera", "synthetic", "--views", "14", "--png", viewsPng, "--json"));
            Assert.True(code == 0, stderr);
            var intrinsics = JsonNode.Parse(stdout)!.AsObject();
            Assert.True(intrinsics["rmsPx"]!.GetValue<double>() <= 0.3, stdout);
            Assert.True(intrinsics["calibration"]!["valid"]!.GetValue<bool>());
            Assert.InRange(intrinsics["fxPx"]!.GetValue<double>(), 1390, 1410);
            Assert.True(new FileInfo(viewsPng).Length > 1000);

            var residuals = Path.Combine(folder, "residuals.png");
            var histogram = Path.Combine(folder, "histogram.png");
            (code, stdout, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "gantry", "--points", "15", "--png", residuals, "--histogram", histogram));
            Assert.True(code == 0, stderr);
            Assert.Contains("Validation RMS", stdout, StringComparison.Ordinal);
            Assert.Contains("head tracking now uses this calibration", stdout, StringComparison.Ordinal);
            Assert.True(new FileInfo(residuals).Length > 1000);
            Assert.True(new FileInfo(histogram).Length > 1000);

            (code, stdout, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "check", "--tolerance", "0.1", "--json"));
            Assert.True(code == 0, stderr + stdout);
            Assert.True(JsonNode.Parse(stdout)!["passed"]!.GetValue<bool>());

            c.Camera.Truth = c.Camera.Truth.WithCameraMovedBy(new SmpRobot.Geometry.Vec3(0, 0.5, 0));
            (code, stdout, _) = await CliRunner.RunAsync(c.Args("calibrate", "check"));
            Assert.Equal(1, code);
            Assert.StartsWith("FAIL", stdout, StringComparison.Ordinal);

            (code, stdout, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "list", "--json"));
            Assert.True(code == 0, stderr);
            var list = JsonNode.Parse(stdout)!.AsObject();
            Assert.Equal(2, list["calibrations"]!.AsArray().Count);
            Assert.False(string.IsNullOrEmpty(list["currentGantryId"]!.GetValue<string>()));

            (code, _, stderr) = await CliRunner.RunAsync(c.Args("calibrate", "gantry", "--points", "2"));
            Assert.Equal(2, code);
            Assert.Contains("points must be", stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
