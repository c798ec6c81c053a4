using SmpRobot.Controller.Gantry;

namespace SmpRobot.Tests.SerialLink;

public sealed class SerialPortLockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-lock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_port_is_held_once_through_any_of_its_names_and_free_again_when_released()
    {
        var device = Path.Combine(_dir, "ttyFAKE0");
        File.WriteAllText(device, "");
        var alias = Path.Combine(_dir, "gantry");
        File.CreateSymbolicLink(alias, device);
        Assert.Equal(SerialPortLock.LockPathFor(device), SerialPortLock.LockPathFor(alias));

        using (SerialPortLock.Acquire(device))
        {
            var refused = Assert.Throws<GantryInUseException>(() => SerialPortLock.Acquire(alias));
            Assert.Contains($"pid {Environment.ProcessId}", refused.Message);
            Assert.Contains("The port was not opened", refused.Message);
        }
        using var again = SerialPortLock.Acquire(alias);
    }
}
