namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>A host of a <see cref="NetworkLab"/>: a network namespace with one NIC per switch.</summary>
public sealed class LabHost
{
    private readonly NetworkLab _lab;

    internal LabHost(NetworkLab lab, string name, string ns, IReadOnlyList<string> nics, int mtu)
    {
        _lab = lab;
        Name = name;
        Namespace = ns;
        Nics = nics;
        Mtu = mtu;
    }

    public string Name { get; }

    /// <summary>"&lt;prefix&gt;-&lt;name&gt;".</summary>
    public string Namespace { get; }

    /// <summary>eth0, eth1, ...: NIC i is plugged into switch i.</summary>
    public IReadOnlyList<string> Nics { get; }

    /// <summary>MTU of this host's links.</summary>
    public int Mtu { get; }

    /// <summary>Runs `ip netns exec NS file args` to completion (60 s timeout).</summary>
    public Task<CommandResult> RunAsync(string file, params string[] args) => RunAsync(file, args, timeout: null);

    /// <summary>Runs `ip netns exec NS file args` to completion; on timeout the process tree is killed and a TimeoutException says so.</summary>
    public Task<CommandResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken ct = default) =>
        Command.RunAsync("ip", ["netns", "exec", Namespace, file, .. args], timeout, ct);

    /// <summary>Starts a long-running process in this host's namespace; the lab kills it on disposal at the latest.</summary>
    public LabProcess Start(string file, params string[] args) => _lab.StartIn(Namespace, file, args);

    /// <summary>The NIC's MAC as "aa:bb:cc:dd:ee:ff".</summary>
    public Task<string> MacAsync(string nic) => NetworkLab.ReadMacAsync(Namespace, nic);

    /// <summary>
    /// Runs <paramref name="action"/> of this process inside the host's namespace, on a fresh thread, and returns its result:
    /// sockets it opens belong to this host and can be used afterwards from any thread.
    /// </summary>
    public T Invoke<T>(Func<T> action) => NetNamespace.Invoke(Namespace, action);

    public void Invoke(Action action) => NetNamespace.Invoke(Namespace, action);

    public override string ToString() => Namespace;
}
