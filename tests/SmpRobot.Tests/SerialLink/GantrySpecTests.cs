using SmpRobot.Controller.Gantry;

namespace SmpRobot.Tests.SerialLink;

public class GantrySpecTests
{
    [Theory]
    [InlineData("sim", GantryLinkKind.Simulated, "", 0, "sim")]
    [InlineData("serial:/dev/ttyUSB0@115200", GantryLinkKind.Serial, "/dev/ttyUSB0", 115200, "serial:/dev/ttyUSB0@115200")]
    [InlineData("serial:/dev/ttyACM1", GantryLinkKind.Serial, "/dev/ttyACM1", 115200, "serial:/dev/ttyACM1@115200")]
    [InlineData("serial:/tmp/a@b/ttySIM@250000", GantryLinkKind.Serial, "/tmp/a@b/ttySIM", 250000, "serial:/tmp/a@b/ttySIM@250000")]
    [InlineData("tcp:127.0.0.1:2300", GantryLinkKind.Tcp, "127.0.0.1", 2300, "tcp:127.0.0.1:2300")]
    [InlineData("tcp:gantry.local:23", GantryLinkKind.Tcp, "gantry.local", 23, "tcp:gantry.local:23")]
    [InlineData("tcp:[::1]:2300", GantryLinkKind.Tcp, "::1", 2300, "tcp:[::1]:2300")]
    public void Parses_the_accepted_forms(string text, GantryLinkKind kind, string target, int number, string description)
    {
        var spec = GantrySpec.Parse(text);
        Assert.Equal(kind, spec.Kind);
        Assert.Equal(target, spec.Target);
        Assert.Equal(number, spec.Number);
        Assert.Equal(description, spec.Description);
    }

    [Theory]
    [InlineData("")]
    [InlineData("SIM")]
    [InlineData("usb")]
    [InlineData("serial:")]
    [InlineData("serial:@115200")]
    [InlineData("serial:/dev/ttyUSB0@")]
    [InlineData("serial:/dev/ttyUSB0@fast")]
    [InlineData("serial:/dev/ttyUSB0@-9600")]
    [InlineData("serial:/dev/ttyUSB0@0")]
    [InlineData("tcp:host")]
    [InlineData("tcp::23")]
    [InlineData("tcp:host:0")]
    [InlineData("tcp:host:70000")]
    [InlineData("tcp:host:2x")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public void Rejects_anything_else_with_a_message_naming_the_forms(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => GantrySpec.Parse(text));
        Assert.Contains("--gantry", e.Message, StringComparison.Ordinal);
        Assert.Contains(text.Length == 0 ? "'" : text, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Transports_describe_themselves_as_their_spec()
    {
        var serial = GantrySpec.Parse("serial:/dev/ttyUSB0@57600");
        var tcp = GantrySpec.Parse("tcp:localhost:2300");
        Assert.Equal(serial.Description, Assert.IsType<SerialGantryTransport>(serial.CreateTransport()).Description);
        Assert.Equal(tcp.Description, Assert.IsType<TcpGantryTransport>(tcp.CreateTransport()).Description);
        Assert.Throws<InvalidOperationException>(() => GantrySpec.Parse("sim").CreateTransport());
    }

    [Fact]
    public void A_controller_refuses_an_unknown_gantry_before_listening()
    {
        var e = Assert.Throws<ArgumentException>(() => SmpRobot.Controller.ControllerHost.Build(new SmpRobot.Controller.ControllerOptions
        {
            Gantry = "usb:1",
            ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
            DataDirectory = Path.Combine(Path.GetTempPath(), "smp-spec-never-created"),
        }));
        Assert.Contains("serial:PATH", e.Message, StringComparison.Ordinal);
    }
}

public class SimulateOptionsTests
{
    [Theory]
    [InlineData("drop=0.001")]
    [InlineData("drop=0.001,stall-at-dot=120:2000,seed=7")]
    public void Known_fault_specs_are_accepted(string spec) =>
        Assert.False(SmpRobot.Controller.Gantry.Simulation.SimulatorCommand.ParseFaultSpec(spec).IsEmpty);

    [Theory]
    [InlineData("")]
    [InlineData("drop 0.1")]
    [InlineData("a,,b")]
    [InlineData("x=\"1\"")]
    [InlineData("stall@120:2s")]
    public void Malformed_fault_specs_are_refused(string spec) =>
        Assert.Contains("--faults", Assert.Throws<ArgumentException>(() => SmpRobot.Controller.Gantry.Simulation.SimulatorCommand.ParseFaultSpec(spec)).Message, StringComparison.Ordinal);
}
