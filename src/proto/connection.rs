//! placeholder; being written
pub struct Connection;
pub enum Event {}
pub enum Message {}
pub enum Role { Client, Server }
pub enum State {}
