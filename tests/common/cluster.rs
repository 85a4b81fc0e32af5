//! A cluster of real nodes for the integration tests (tests/cluster.rs,
//! tests/expiry.rs): each node in its own temp dir on a port chosen ahead
//! (see `ports_ahead`), listing the others as peers.
#![allow(dead_code)]

use super::{Client, Server, TempDir, port_in_use, ports_ahead};

/// Every port but the `i`th: node `i`'s peers.
pub fn others(ports: &[u16], i: usize) -> Vec<u16> {
    ports.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &p)| p).collect()
}

/// A cluster of real nodes; node `i` listens on `ports[i]`, keeps its data
/// in `dirs[i]` and lists every other port as a peer.
pub struct Cluster {
    pub ports: Vec<u16>,
    pub dirs: Vec<TempDir>,
    pub nodes: Vec<Option<Server>>,
    pub args: Vec<&'static str>,
}

impl Cluster {
    /// Chooses ports (ahead: see `ports_ahead`) and dirs for `n` nodes
    /// without starting any.
    #[track_caller]
    pub fn planned(n: usize, args: &[&'static str]) -> Cluster {
        Cluster {
            ports: ports_ahead(n),
            dirs: (0..n).map(|_| TempDir::new("cluster")).collect(),
            nodes: (0..n).map(|_| None).collect(),
            args: args.to_vec(),
        }
    }

    /// Starts `n` nodes (extra server `args` for each). If a node cannot
    /// bind its port (taken since it was chosen), the whole cluster starts
    /// over on fresh ports, since the running nodes' peers name the old one.
    #[track_caller]
    pub fn start(n: usize, args: &[&'static str]) -> Cluster {
        let mut last = String::new();
        for _ in 0..5 {
            let mut c = Cluster::planned(n, args);
            let mut started = Ok(());
            for i in 0..n {
                started = c.try_start_node(i);
                if started.is_err() {
                    break;
                }
            }
            match started {
                Ok(()) => return c,
                Err(msg) if port_in_use(&msg) => last = msg,
                Err(msg) => panic!("node did not start: {msg}"),
            }
        }
        panic!("no cluster of {n} started on 5 sets of ports: {last}");
    }

    /// Starts node `i` on its port (tried again while that is in use, up to
    /// the deadline: the other nodes name it).
    #[track_caller]
    pub fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let peers = others(&self.ports, i);
        self.nodes[i] = Some(Server::start_with(self.dirs[i].path(), &self.args, &peers, Some(self.ports[i])));
    }

    /// Starts node `i` on its port, once.
    #[track_caller]
    pub fn try_start_node(&mut self, i: usize) -> Result<(), String> {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let peers = others(&self.ports, i);
        self.nodes[i] = Some(Server::try_start_with(self.dirs[i].path(), &self.args, &peers, Some(self.ports[i]))?);
        Ok(())
    }

    #[track_caller]
    pub fn node(&mut self, i: usize) -> &mut Server {
        self.nodes[i].as_mut().expect("node running")
    }

    #[track_caller]
    pub fn kill9(&mut self, i: usize) {
        self.node(i).kill9();
    }

    /// Restarts a killed node on its port and data dir.
    #[track_caller]
    pub fn restart(&mut self, i: usize) {
        self.node(i).restart();
    }

    #[track_caller]
    pub fn client(&self, i: usize) -> Client {
        Client::connect(self.ports[i])
    }

    /// The name node `i` gives its link to node `j` in STATS.
    pub fn link(&self, j: usize) -> String {
        format!("peer.127.0.0.1:{}", self.ports[j])
    }
}
